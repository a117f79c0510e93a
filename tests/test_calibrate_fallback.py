"""scripts/calibrate_fallback.py's replay of the FallbackClassifier rule and
its choice of thresholds, on made-up rankings (no model)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("calibrate_fallback", ROOT / "scripts" / "calibrate_fallback.py")
assert _spec and _spec.loader
calibrate = importlib.util.module_from_spec(_spec)
sys.modules["calibrate_fallback"] = calibrate  # dataclasses look their module up there
_spec.loader.exec_module(calibrate)
Parsed = calibrate.Parsed


def test_the_replay_follows_rasas_rule_and_keeps_rule_decisions() -> None:
    row = Parsed("greet", [("greet", 0.50), ("thank", 0.45)])
    assert calibrate.decide(row, 0.40, 0.0) == "greet"
    assert calibrate.decide(row, 0.55, 0.0) == "nlu_fallback"  # below the threshold
    assert calibrate.decide(row, 0.40, 0.10) == "nlu_fallback"  # top two closer than the ambiguity threshold
    assert calibrate.decide(Parsed("inform", [], rule="inform"), 0.99, 0.5) == "inform"


def test_a_message_classified_unclear_falls_back_at_any_threshold() -> None:
    row = Parsed("nlu_fallback", [("unclear", 0.90), ("greet", 0.05)])
    assert calibrate.decide(row, 0.10, 0.0) == "nlu_fallback"
    assert calibrate.score([row], 0.10, 0.0) == (1.0, 1, 0, 1)


def test_a_vague_message_is_right_only_when_it_falls_back() -> None:
    vague = Parsed("nlu_fallback", [("affirm", 0.40), ("deny", 0.30)])
    assert calibrate.score([vague], 0.30, 0.0)[0] == 0.0
    assert calibrate.score([vague], 0.50, 0.0) == (1.0, 1, 0, 1)


def test_the_lowest_threshold_within_one_standard_error_of_the_best_is_chosen() -> None:
    # 100 messages answered right at confidence 0.9, 10 answered wrong at 0.9
    # (no threshold saves them), and vague ones at 0.35 (caught from 0.36)
    # or 0.60 (caught from 0.61). With ten at each the best is 0.61 and 0.36
    # is ten messages worse, more than a standard error: 0.61 is chosen.
    answered = [Parsed("greet", [("greet", 0.9), ("thank", 0.05)]) for _ in range(100)]
    answered += [Parsed("thank", [("greet", 0.9), ("thank", 0.05)]) for _ in range(10)]
    low = [Parsed("nlu_fallback", [("affirm", 0.35), ("deny", 0.1)]) for _ in range(10)]
    high = [Parsed("nlu_fallback", [("affirm", 0.60), ("deny", 0.1)]) for _ in range(10)]
    grid, best, chosen, error = calibrate.choose(answered + low + high)
    assert best == (0.61, 0.0) and chosen == (0.61, 0.0)
    # With one vague message at 0.60 the best gains one message, within a
    # standard error: the lowest pair that catches the others wins.
    grid, best, chosen, error = calibrate.choose(answered + low + high[:1])
    assert best == (0.61, 0.0) and chosen == (0.36, 0.0)
    assert grid[best][0] - error <= grid[chosen][0] < grid[best][0]


def test_write_config_replaces_only_the_fallback_pair(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "pipeline:\n  - name: FallbackClassifier\n    threshold: 0.45\n    ambiguity_threshold: 0.05\n"
        "policies:\n  - name: RulePolicy\n    core_fallback_threshold: 0.3\n"
    )
    calibrate.write_config(config, 0.48, 0.0)
    assert config.read_text() == (
        "pipeline:\n  - name: FallbackClassifier\n    threshold: 0.48\n    ambiguity_threshold: 0.0\n"
        "policies:\n  - name: RulePolicy\n    core_fallback_threshold: 0.3\n"
    )
