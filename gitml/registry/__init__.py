"""Model registry (GTO tags), model cards, deploy-on-tag with blue/green and rollback."""
