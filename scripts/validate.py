"""`rasa data validate`, strict: every warning fails, except two that are
false positives of Rasa's validator for this project (each checked here):

- "The utterance 'utter_x' is not used in any story or rule": responses that
  custom actions send (`response="utter_x"`, or a family such as
  `f"utter_rule_{rule}"`) are used, just not from a story. Each one must
  really be referenced by the actions' code, or the warning stands.
- "utter_ask_<slot>" responses of a form's required slots are sent by the form.
- "duplicated intents ... across multiple domain files: faq": the retrieval
  intent is declared once (domain/security_faq.yml); Rasa adds it again from
  the `utter_faq/*` responses while merging the domain directory.

Usage: python scripts/validate.py   (from the project root)
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def referenced_responses() -> tuple[set[str], tuple[str, ...]]:
    # The agent console (kefu/console/) sends some responses through Rasa's
    # API too, and the notice worker (kefu/notices/) renders its own.
    sources = [
        *(ROOT / "actions").glob("*.py"),
        *(ROOT / "kefu" / "console").glob("*.py"),
        *(ROOT / "kefu" / "notices").glob("*.py"),
    ]
    code = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    names = set(re.findall(r'"(utter_[a-z_/]+)"', code))
    prefixes = tuple(re.findall(r'f"(utter_[a-z_]+)\{', code))
    return names, prefixes


def main() -> int:
    from rasa.shared.importers.importer import TrainingDataImporter
    from rasa.validator import Validator

    names, prefixes = referenced_responses()
    importer = TrainingDataImporter.load_from_config(
        config_path=str(ROOT / "config.yml"),
        domain_path=str(ROOT / "domain"),
        training_data_paths=[str(ROOT / "data")],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        validator = Validator.from_importer(importer)
        # Each check reports through warnings, which are judged below.
        for _ in (
            validator.verify_intents_in_stories(False),
            validator.verify_utterances_in_stories(False),
            validator.verify_story_structure(False, max_history=None),
            validator.verify_slot_mappings(),
            validator.verify_forms_in_domain() if hasattr(validator, "verify_forms_in_domain") else True,
            validator.verify_example_repetition_in_intents(False),
            validator.verify_actions_in_stories_rules(),
            validator.verify_form_slots(),
            validator.verify_domain_validity(),
        ):
            pass
    from rasa.utils.common import EXPECTED_WARNINGS

    asked_by_forms = {
        f"utter_ask_{slot}" for form in validator.domain.forms.values() for slot in form.get("required_slots", [])
    }
    problems = []
    for warning in caught:
        text = str(warning.message)
        if issubclass(warning.category, (DeprecationWarning, PendingDeprecationWarning)) or "SQLAlchemy" in text:
            continue
        if any(
            issubclass(warning.category, category) and re.match(pattern, text)
            for category, pattern in EXPECTED_WARNINGS
        ):
            continue  # Rasa silences these itself
        unused = re.match(r"The utterance '(utter_[^']+)' is not used in any story or rule", text)
        if unused and (
            unused.group(1) in names or unused.group(1).startswith(prefixes) or unused.group(1) in asked_by_forms
        ):
            continue
        if re.match(r"The following duplicated intents have been found across multiple domain files: faq$", text):
            continue
        problems.append(text)
    for text in problems:
        print(f"validate: {text}")
    # The checks' own verdicts count the warnings filtered above as failures.
    failed = bool(problems)
    print(f"validate: {'FAILED' if failed else 'clean'} ({len(problems)} problems, {len(caught)} warnings seen)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
