"""Benchmarks: dtrace-nb side by side with bpftrace and hand-written bcc (`make bench`)."""
