"""Training the CNN: the run's settings (config), filling the MFCC cache (preprocess), the
batches (data), the training loop and its resume (trainer), and run folders and reports (runs).
"""
