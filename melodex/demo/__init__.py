"""The synthetic demo corpus in FMA's layout: the instrument styles (synth), the corpus plan of
artists, albums and dates (plan), and writing it out (corpus).
"""
