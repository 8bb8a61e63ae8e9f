"""Samples -> MFCC: the MFCC of a segment (mfcc) and the on-disk MFCC cache that training
reads (cache).
"""
