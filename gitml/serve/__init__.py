"""The model server: MLflow scoring and KServe V2 protocols, metrics, traffic log."""
