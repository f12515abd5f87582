"""provision: Temporal on AWS ECS, with plain boto3."""
