"""runtime stage of dtrace-nb."""
