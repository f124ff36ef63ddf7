"""Evaluation: the LLP metrics, scoring predictions (score, evaluate), bootstrap statistics, label quality."""
