"""Shipped emotion-mapping files, installed as the package ``aupipe.mappings``."""
