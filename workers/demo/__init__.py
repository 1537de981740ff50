"""``prodcat demo``: the whole loop on real catalog data, in one command."""
