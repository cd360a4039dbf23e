"""The desktop tray app: shows the sync agent's state and lets a person act on it."""
