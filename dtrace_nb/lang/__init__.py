"""lang stage of dtrace-nb."""
