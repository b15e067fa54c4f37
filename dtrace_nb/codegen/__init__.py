"""codegen stage of dtrace-nb."""
