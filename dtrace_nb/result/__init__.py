"""What a session leaves: the Result (result.py: DataFrames, text, plots), its recordings
(recording.py) and their playback (replay.py). Nothing is imported here: the magic reads
recordings without pandas, which result.py needs."""
