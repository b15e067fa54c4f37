"""display stage of dtrace-nb."""
