"""kefu.nlu.linear: Rasa's logistic regression with C as a setting."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # imports Rasa (several seconds)


def test_c_from_the_config_reaches_the_estimator_and_defaults_to_rasas() -> None:
    from kefu.nlu.linear import RegularisedLogisticRegressionClassifier as Classifier

    configured = Classifier({**Classifier.get_default_config(), "C": 10.0}, "intents", None, None)
    assert configured.clf.C == 10.0
    assert configured.clf.class_weight == "balanced"  # Rasa's own settings are kept
    default = Classifier(Classifier.get_default_config(), "intents", None, None)
    assert default.clf.C == 1.0
