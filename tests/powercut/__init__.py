"""Power-cut tests: a FUSE filesystem that forgets what was not made durable, and the harness that cuts it."""
