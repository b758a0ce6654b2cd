"""Evaluation of stem insertion: metrics, baseline systems and the protocol. See docs/evaluation.md."""

from stemfill.evaluation.baselines import SYSTEMS, System, get_system
from stemfill.evaluation.harness import evaluate, evaluate_many, markdown, write_json

__all__ = ["SYSTEMS", "System", "evaluate", "evaluate_many", "get_system", "markdown", "write_json"]
