"""Standard taxonomies: read Shopify's Standard Product Taxonomy and Google's product
categories, and align a catalog's own category tree to them."""
