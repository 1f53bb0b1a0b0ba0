"""Tests of coronalign.io: data models, products, tables, reports, provenance, associations."""
