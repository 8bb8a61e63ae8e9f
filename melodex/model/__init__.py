"""MFCC -> embedding and genre probabilities: the CNN (cnn) and its checkpoints, saved with
their configuration and loaded without running pickled code (checkpoint).
"""
