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


def test_coefficients_kept_in_fortran_order_give_the_same_probabilities() -> None:
    import scipy.sparse
    from rasa.shared.nlu.training_data.features import Features
    from rasa.shared.nlu.training_data.message import Message

    from kefu.nlu.linear import RegularisedLogisticRegressionClassifier as Classifier

    classifier = Classifier({**Classifier.get_default_config(), "C": 10.0}, "intents", None, None)
    features = scipy.sparse.random(80, 600, density=0.02, format="csr", random_state=1)
    classifier.clf.fit(features, [f"intent_{row % 4}" for row in range(80)])
    assert not classifier.clf.coef_.T.flags.c_contiguous  # as scikit-learn leaves it: scipy copies it per message
    expected = classifier.clf.predict_proba(features[:6])
    messages = []
    for row in range(6):
        message = Message(data={"text": f"第{row}句"})
        message.add_features(Features(features[row], "sentence", "text", "test"))
        messages.append(message)
    classifier.process(messages)
    assert classifier.clf.coef_.flags.f_contiguous
    for row, message in enumerate(messages):
        ranking = {entry["name"]: entry["confidence"] for entry in message.get("intent_ranking")}
        assert [ranking[name] for name in classifier.clf.classes_] == list(expected[row])


def test_the_feature_matrix_is_rasas() -> None:
    import numpy as np
    import scipy.sparse
    from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
    from rasa.shared.nlu.training_data.features import Features
    from rasa.shared.nlu.training_data.message import Message

    from kefu.nlu.linear import RegularisedLogisticRegressionClassifier as Classifier

    rng = np.random.default_rng(7)
    messages = []
    for row in range(5):
        message = Message(data={"text": f"第{row}句"})
        tokens = 3 + row
        for origin, width in (("words", 40), ("chars", 70), ("regex", 5)):
            sentence = scipy.sparse.random(1, width, density=0.3, format="coo", random_state=row)
            message.add_features(Features(scipy.sparse.random(tokens, width, density=0.3), "sequence", "text", origin))
            message.add_features(Features(sentence, "sentence", "text", origin))
        message.add_features(Features(rng.normal(size=(1, 16)), "sentence", "text", "encoder"))
        message.add_features(Features(rng.normal(size=(tokens, 16)), "sequence", "text", "encoder"))
        message.add_features(Features(scipy.sparse.random(1, 9, density=0.5), "sentence", "intent", "other"))
        messages.append(message)
    classifier = Classifier(Classifier.get_default_config(), "intents", None, None)
    ours = classifier._create_X(messages)
    rasas = LogisticRegressionClassifier._create_X(classifier, messages)
    assert ours.shape == rasas.shape == (5, 40 + 70 + 5 + 16)
    assert np.array_equal(ours.toarray(), rasas.toarray())
