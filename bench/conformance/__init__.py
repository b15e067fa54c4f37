"""dtrace-utils' own unittest suite run through dtrace-nb, judged as its runtest.sh judges.

suite.py reads what a test asks for, triggers.py builds its trigger programs, execute.py runs
the command, judge.py compares, capabilities.py names what this kernel lacks, report.py
writes the tables. `python -m bench.conformance --help`.
"""
