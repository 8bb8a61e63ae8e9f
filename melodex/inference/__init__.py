"""Running a trained model over audio files: the stream of decoded segments (stream), the
Predictor (predictor), its per-file results (results), the output formats (writers) and
reading or repairing a JSONL results file (jsonl).
"""
