"""Deployment files that ship in the wheel: the AWS CloudFormation templates (aws/) and what renders them."""
