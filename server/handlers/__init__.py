"""Thin Tornado request handlers, grouped by resource."""
