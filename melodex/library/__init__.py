"""Results -> a collection: the Parquet library store (store), track metadata from tags, FMA
and manifests (metadata), and adding tracks to a store (indexing).
"""
