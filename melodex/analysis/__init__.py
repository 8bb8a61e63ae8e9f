"""What users came for, read from a library store: 2-D maps (mapping, map_placement, map_page,
map_template, map_figure, umap_kernels), similarity search (similarity), how artists evolve (evolution,
evolution_report) and a local server for the map and its audio (serve). Nothing here
decodes audio or computes features: the layer contracts in pyproject.toml forbid it.
"""
