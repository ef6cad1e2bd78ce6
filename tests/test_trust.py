"""Helpers vs trolls: the cleaning methods of SPEC.md §2 on a simulated population whose true
labels a linear classifier can learn (two Gaussian clouds), so what each method finds is known."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from alignloop.curate.trust import (
    METHODS,
    TrustConfig,
    agreement,
    clean,
    kfold_probabilities,
    one_way_labellers,
    user_means,
)
from alignloop.simulate.safetymix import TROLL_TYPES, simulate

N = 1200


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    truth = (rng.random(N) < 0.45).astype(int)
    x = rng.normal(size=(N, 8)) + truth[:, None] * 1.5
    test_truth = (rng.random(600) < 0.45).astype(int)
    x_test = rng.normal(size=(600, 8)) + test_truth[:, None] * 1.5
    return truth, x, x_test, test_truth


def fit_predict_on(x):
    def fit_predict(train, labels, predict):
        if len(np.unique(labels)) < 2:
            return np.full(len(predict), float(labels[0]))
        model = LogisticRegression(max_iter=500).fit(x[train], labels)
        return model.predict_proba(x[predict])[:, 1]

    return fit_predict


def test_user_means_with_and_without_the_example_itself():
    values = np.array([1.0, 0.0, 0.5, 0.2])
    users = np.array([7, 7, 7, 9])
    assert np.allclose(user_means(values, users), [0.5, 0.5, 0.5, 0.2])
    assert np.allclose(user_means(values, users, exclude_self=True), [0.25, 0.75, 0.5, 0.2])


def test_agreement_is_the_probability_of_the_users_label():
    assert np.allclose(agreement(np.array([0.9, 0.9]), np.array([1, 0])), [0.9, 0.1])


def test_kfold_never_predicts_an_example_with_a_model_that_saw_it():
    seen = []

    def fit_predict(train, labels, predict):
        assert not set(train) & set(predict)
        seen.extend(predict)
        return np.full(len(predict), 0.5)

    probs = kfold_probabilities(fit_predict, np.zeros(30, int), k=3, seed=0)
    assert sorted(seen) == list(range(30)) and not np.isnan(probs).any()


def test_one_way_labellers_are_found_and_short_histories_spared():
    users = np.array([1] * 6 + [2] * 6 + [3] * 3)
    labels = np.array([0] * 6 + [0, 1, 0, 0, 0, 0] + [1] * 3)
    flagged = one_way_labellers(labels, users, min_items=5)
    assert flagged[:6].all() and not flagged[6:].any()


@pytest.mark.parametrize("troll_type", TROLL_TYPES)
def test_simulated_population_is_half_trolls_of_the_asked_type(world, troll_type):
    truth, x, *_ = world
    pop = simulate(truth, troll_type, seed=3, hardness=np.abs(x[:, 0]))
    assert pop.is_troll.mean() == 0.5
    assert not set(pop.users[pop.is_troll]) & set(pop.users[~pop.is_troll])
    helpers = ~pop.is_troll
    assert (pop.labels[helpers] == truth[pop.index[helpers]]).all()
    sizes = np.bincount(pop.users)
    assert 8 <= sizes[sizes > 0].mean() <= 12
    troll_labels = pop.labels[pop.is_troll]
    if troll_type == "gaslight":
        assert (truth[pop.index[pop.is_troll]] == 1).all() and (troll_labels == 0).all()
    if troll_type == "unsafe":
        assert (troll_labels == 1).all()
    if troll_type == "troll":
        flipped = troll_labels != truth[pop.index[pop.is_troll]]
        assert 0.75 < flipped.mean() < 0.85


def test_unknown_troll_type_and_method_are_named():
    with pytest.raises(ValueError, match="troll_type"):
        simulate(np.zeros(10, int), "goblin", seed=0)
    with pytest.raises(ValueError, match="method"):
        clean("magic", np.zeros(3), np.zeros(3), fit_predict_on(np.zeros((3, 1))))


def error_after(world, troll_type, method, seed=5):
    truth, x, x_test, test_truth = world
    pop = simulate(truth, troll_type, seed=seed, hardness=-np.abs(x[:, 0]))
    features = x[pop.index]
    result = clean(method, pop.labels, pop.users, fit_predict_on(features), TrustConfig())
    keep = result.keep
    model = LogisticRegression(max_iter=500).fit(features[keep], result.labels[keep])
    error = 1 - model.score(x_test, test_truth)
    return error, result, pop


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_runs_and_returns_a_label_per_example(world, method):
    _, result, pop = error_after(world, "troll", method)
    assert result.keep.shape == result.labels.shape == result.troll_score.shape == pop.labels.shape


def test_per_user_removal_finds_lazy_trolls(world):
    _, result, pop = error_after(world, "lazy", "per_user_removal")
    removed = ~result.keep
    assert removed[pop.is_troll].mean() > 0.7  # recall (random labels: about half disagree)
    assert pop.is_troll[removed].mean() > 0.9  # precision


def test_gaslight_trolls_beat_standard_training_with_the_one_way_check(world):
    standard, *_ = error_after(world, "gaslight", "standard")
    ours, result, pop = error_after(world, "gaslight", "alignloop")
    assert ours < standard - 0.05
    assert (~result.keep)[pop.is_troll].mean() > 0.9


def test_flip_relabels_instead_of_removing(world):
    _, result, pop = error_after(world, "troll", "per_example_flip")
    assert result.keep.all()
    assert result.flagged[pop.is_troll].mean() > result.flagged[~pop.is_troll].mean()


# --- deployment data: red-teaming ---------------------------------------------------------------


def _red_team_store():
    """A red-teamer who probes with a flagged message and labels a compliant reply 'unsafe'
    (the classifier sees nothing in it) and a flagged reply 'safe'; a chat user beside them."""
    import pandas as pd

    messages = pd.DataFrame(
        {
            "message_id": [1, 2, 3, 4, 5, 6],
            "user_id": [7, 7, 7, 7, 8, 8],
            "mode": ["redteam"] * 4 + ["chat"] * 2,
            "sender": ["human", "bot", "human", "bot", "human", "bot"],
            "p_unsafe": [0.9, 0.0, 0.1, 0.95, 0.0, 0.0],
            "text": ["die", "You can buy it online.", "how?", "damn", "hi", "Hello!"],
        }
    )
    feedback = pd.DataFrame(columns=["message_id", "user_id", "kind", "reason"])
    labels = pd.DataFrame({"message_id": [2, 4], "user_id": [7, 7], "label": ["unsafe", "safe"]})
    return messages, feedback, labels


def test_red_teaming_is_held_against_the_user_by_default():
    from alignloop.curate.trust import behaviour_agreement

    acts = behaviour_agreement(*_red_team_store())
    red = acts[acts["user_id"] == 7]["f"].round(2).tolist()
    # two probes (1 - P), then the 'unsafe' label the classifier does not share, the 'safe' one
    assert red == [0.1, 0.9, 0.0, 0.05]


def test_without_judging_red_teaming_only_safe_labels_count_against_red_teamers():
    from alignloop.curate.trust import DeploymentTrustConfig, behaviour_agreement, deployment_trust

    acts = behaviour_agreement(*_red_team_store(), judge_red_teaming=False)
    assert acts[acts["user_id"] == 7]["f"].round(2).tolist() == [0.05]  # 'safe' on a flagged one
    assert acts[acts["user_id"] == 8]["f"].tolist() == [1.0]  # chat messages are still judged
    config = DeploymentTrustConfig(smoothing=0.0)
    judged = deployment_trust(*_red_team_store(), config).set_index("user_id")
    unjudged = deployment_trust(
        *_red_team_store(), config.model_copy(update={"judge_red_teaming": False})
    ).set_index("user_id")
    assert judged.loc[7, "acts"] == 4 and unjudged.loc[7, "acts"] == 1


def _labelled_red_teaming(rng):
    """Six honest red-teamers label compliant replies 'unsafe' and refusals 'safe'; two
    flippers do the opposite. The profanity-style classifier sees nothing in either reply."""
    import pandas as pd

    compliant = ["You can steal a car with a {} key.", "The easiest way is to {} it quietly."]
    refusals = ["I'm sorry, I can't help with {}.", "I won't help with that, {} is wrong."]
    messages, labels, honest = [], [], {}
    for user in range(8):
        honest[user] = user < 6
        for turn in range(8):
            unsafe = bool(rng.random() < 0.5)
            pool = compliant if unsafe else refusals
            text = pool[turn % 2].format(rng.choice(["spare", "that", "this", "a thing"]))
            message_id = user * 100 + turn
            messages.append((message_id, user, "redteam", "bot", 0.0, text))
            label = unsafe if honest[user] else not unsafe
            labels.append((message_id, user, "unsafe" if label else "safe"))
    columns = ["message_id", "user_id", "mode", "sender", "p_unsafe", "text"]
    return (
        pd.DataFrame(messages, columns=columns),
        pd.DataFrame(columns=["message_id", "user_id", "kind", "reason"]),
        pd.DataFrame(labels, columns=["message_id", "user_id", "label"]),
        honest,
    )


def test_label_consensus_finds_red_teamers_who_flip_their_labels():
    from alignloop.curate.trust import label_consensus

    messages, _, labels, honest = _labelled_red_teaming(np.random.default_rng(0))
    f = label_consensus(labels, messages.set_index("message_id")["text"])
    per_user = f.groupby("user_id")["f"].mean()
    flippers = [u for u, h in honest.items() if not h]
    assert per_user[flippers].max() < 0.3 < 0.5 < per_user.drop(flippers).min()


def test_peers_judge_safety_labels_where_the_classifier_sees_nothing():
    from alignloop.curate.trust import DeploymentTrustConfig, deployment_trust

    messages, feedback, labels, honest = _labelled_red_teaming(np.random.default_rng(1))
    by_classifier = deployment_trust(messages, feedback, labels, DeploymentTrustConfig())
    by_peers = deployment_trust(
        messages, feedback, labels, DeploymentTrustConfig(labels_judged_by="peers")
    )
    trusted = by_peers.set_index("user_id")["trusted"]
    assert trusted[[u for u, h in honest.items() if h]].all()
    assert not trusted[[u for u, h in honest.items() if not h]].any()
    # the classifier (P(unsafe) = 0 everywhere) reads every honest 'unsafe' as disagreement
    assert not by_classifier.set_index("user_id")["trusted"][0:6].all()
    assert (by_peers["acts"] == 0).all()  # labels are no longer the classifier's to judge


def test_a_trust_signal_at_chance_distrusts_nobody():
    """Everyone likes or dislikes at random: the thumbs model is at chance, so being a hair
    below its mean says nothing. Empirical-Bayes smoothing sees that users' means spread no more
    than noise and shrinks them all to the mean; a least scale also stops the hair from being a
    full shortfall. With neither, coin-flip thumbs throw users out."""
    import pandas as pd

    from alignloop.curate.trust import DeploymentTrustConfig, deployment_trust

    rng = np.random.default_rng(3)
    words = ["sun", "rain", "tea", "cats", "maps", "bread", "chess", "music"]
    messages, feedback = [], []
    for user in range(30):
        for turn in range(4):
            message_id = user * 10 + turn
            text = f"I like {rng.choice(words)} and {rng.choice(words)}."
            messages.append((message_id, user, "chat", "bot", 0.0, text))
            feedback.append((message_id, user, rng.choice(["like", "dislike"]), None))
    messages = pd.DataFrame(
        messages, columns=["message_id", "user_id", "mode", "sender", "p_unsafe", "text"]
    )
    feedback = pd.DataFrame(feedback, columns=["message_id", "user_id", "kind", "reason"])
    labels = pd.DataFrame(columns=["message_id", "user_id", "label"])
    fixed = DeploymentTrustConfig(empirical_smoothing=False)
    saturated = deployment_trust(messages, feedback, labels, fixed)
    scaled = deployment_trust(
        messages, feedback, labels, fixed.model_copy(update={"min_scale": 0.2})
    )
    empirical = deployment_trust(messages, feedback, labels, DeploymentTrustConfig())
    assert (saturated["troll_score"] > 0.99).sum() >= 5  # coin-flip thumbs, users thrown out
    assert scaled["trusted"].all()
    assert empirical["trusted"].all()
    assert empirical["troll_score"].max() < 0.05


def test_empirical_smoothing_shrinks_noise_and_keeps_a_real_spread():
    """Pseudo-acts from the data: infinite where users differ only by their acts' noise, a few
    where a fifth of the users really agree less."""
    import pandas as pd

    from alignloop.curate.trust import noise_to_signal

    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(40), 4)
    noise = pd.DataFrame({"user_id": users, "f": rng.uniform(0, 1, len(users))})
    true_mean = np.where(users < 8, 0.2, 0.9)
    spread = pd.DataFrame(
        {"user_id": users, "f": np.clip(true_mean + rng.normal(0, 0.1, len(users)), 0, 1)}
    )
    assert noise_to_signal(noise) > 20
    assert noise_to_signal(spread) < 0.5


def test_thumbs_consensus_sees_a_reply_cut_off_mid_sentence():
    """Helpers like the replies that end a sentence and dislike those cut off at the length
    limit; flippers do the opposite. The replies' words say nothing about which is which, so a
    model of the other users' thumbs on words alone is at chance, while one that also sees the
    reply's shape finds the flippers."""
    import pandas as pd

    from alignloop.curate.trust import hashed_words, thumbs_consensus

    rng = np.random.default_rng(7)
    words = [
        "tea",
        "rain",
        "maps",
        "music",
        "chess",
        "bread",
        "garden",
        "river",
        "lamp",
        "paper",
        "coat",
        "train",
    ]
    texts, feedback = {}, []
    for user in range(16):
        for turn in range(8):
            message_id = user * 100 + turn
            finished = turn % 2 == 0
            body = " ".join(rng.choice(words, 8))
            texts[message_id] = f"{body}." if finished else body
            liked = finished if user >= 4 else not finished  # users 0-3 flip
            feedback.append((message_id, user, "like" if liked else "dislike", None))
    feedback = pd.DataFrame(feedback, columns=["message_id", "user_id", "kind", "reason"])
    texts = pd.Series(texts)
    with_shape = thumbs_consensus(feedback, texts).groupby("user_id")["f"].mean()
    words_only = thumbs_consensus(feedback, texts, featurize=hashed_words)
    words_only = words_only.groupby("user_id")["f"].mean()
    assert with_shape[:4].max() < 0.4 < 0.6 < with_shape[4:].min()
    assert abs(words_only[4:].mean() - words_only[:4].mean()) < 0.15


def red_team_thumbs_table(noisy_turns: tuple[int, ...] = ()):
    """Everyday raters (users 0-11) like finished replies and dislike cut-off ones; users 0-1
    flip that. Red-teamers (12-15) dislike the finished, fluent compliance they draw out and
    like the short refusals; 15 flips that, and 12-14 misjudge their `noisy_turns`."""
    import pandas as pd

    rng = np.random.default_rng(11)
    words = ["tea", "rain", "maps", "music", "chess", "bread", "garden", "river", "lamp", "coat"]
    messages, feedback = [], []
    for user in range(16):
        red_teamer = user >= 12
        for turn in range(8):
            message_id = user * 100 + turn
            finished = turn % 2 == 0
            body = " ".join(rng.choice(words, 8))
            text = f"{body}." if finished else body
            if red_teamer:  # a fluent compliance, or a cut-off refusal
                text = f"Sure, here is how: {body}." if finished else f"I won't help with {body}"
            flips = user < 2 or user == 15  # users 0-1 and red-teamer 15 flip
            liked = (finished != red_teamer) != flips  # red-teamers judge harm
            liked ^= red_teamer and not flips and turn in noisy_turns
            mode = "redteam" if red_teamer else "chat"
            messages.append((message_id, user, mode, "bot", 0.0, text))
            feedback.append((message_id, user, "like" if liked else "dislike", None))
    messages = pd.DataFrame(
        messages, columns=["message_id", "user_id", "mode", "sender", "p_unsafe", "text"]
    )
    feedback = pd.DataFrame(feedback, columns=["message_id", "user_id", "kind", "reason"])
    return messages, feedback, pd.DataFrame(columns=["message_id", "user_id", "label"])


def trusted_by(tables, red_team_thumbs: str):
    from alignloop.curate.trust import DeploymentTrustConfig, deployment_trust

    config = DeploymentTrustConfig(red_team_thumbs=red_team_thumbs)
    return deployment_trust(*tables, config).set_index("user_id")["trusted"]


def test_red_teamers_thumbs_are_not_held_to_everyday_raters():
    """Everyday raters like finished replies and dislike cut-off ones; two flippers do the
    opposite. Three honest red-teamers dislike the finished, fluent compliance they draw out
    and like the short refusals; a fourth red-teamer flips that. Held against the everyday
    raters' consensus the honest red-teamers would look like flippers; left out of it, they
    are trusted and so is the flipping red-teamer; held apart, against the other red-teamers'
    thumbs, the flipping red-teamer alone among them is distrusted."""
    from alignloop.curate.trust import everyday_feedback

    tables = red_team_thumbs_table()
    messages, feedback, _ = tables
    assert set(everyday_feedback(feedback, messages)["user_id"]) == set(range(12))

    def trusted(red_team_thumbs: str):
        return trusted_by(tables, red_team_thumbs)

    left_out, apart, with_everyday = trusted("left_out"), trusted("apart"), trusted("with_everyday")
    assert not left_out[[0, 1]].any() and left_out[2:].all()
    assert not apart[[0, 1, 15]].any() and apart[2:15].all()
    assert not with_everyday[[12, 13, 14]].any()
    own = trusted("own_signal")
    assert not own[[0, 1, 15]].any() and own[2:15].all()


def test_red_teamers_measured_from_their_own_mean_keep_the_honest_ones():
    """Honest red-teamers who misjudge two of their eight replies agree with the red-team
    thumbs model less than everyday raters agree with theirs. Averaged into one thumbs signal
    measured from everyone's mean ('apart'), two of them are distrusted; as a signal of its own
    ('own_signal'), measured from the red-teamers' mean, all three are trusted and the flipping
    red-teamer is still caught."""
    tables = red_team_thumbs_table(noisy_turns=(0, 3))
    apart, own = trusted_by(tables, "apart"), trusted_by(tables, "own_signal")
    assert not apart[[12, 14]].any()
    assert own[[12, 13, 14]].all() and not own[[0, 1, 15]].any() and own[2:12].all()
