"""File -> samples: finding audio files (files), decoding and resampling them (decode), cutting
them into 30-s segments (segments), and writing audio (encode, for the demo and the tests).
"""
