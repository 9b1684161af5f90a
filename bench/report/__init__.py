"""Layer 7: stored records to tables, figures and the Markdown report."""
