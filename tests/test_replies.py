"""What a patient's text means: pure classification, in English and Spanish, with the replies
that look like an opt-out or a warning sign but are not."""

from __future__ import annotations

import pytest

from aftercare.replies import classify, pain_urgency
from aftercare.statuses import ReplyKind

STOP, START, HELP = ReplyKind.STOP, ReplyKind.START, ReplyKind.HELP
PAIN, QUESTION = ReplyKind.PAIN, ReplyKind.QUESTION


@pytest.mark.parametrize(
    "body",
    ["STOP", "stop", " Stop. ", "STOPALL", "Unsubscribe!", "cancel", "END", "quit", "REVOKE",
     "OptOut", "'stop'", "stop 🙏", "Alto", "¡Basta!"],
)  # fmt: skip
def test_a_stop_keyword_alone_is_an_opt_out(body):
    found = classify(body)
    assert (found.kind, found.keyword) == (STOP, True)
    assert not found.urgent


@pytest.mark.parametrize("body", ["START", "start!", "Unstop"])
def test_start_and_unstop_opt_back_in(body):
    assert classify(body).kind == START


def test_yes_is_flagged_not_decided():
    # Twilio counts YES as opt-in; only the inbox knows whether the number had opted out.
    found = classify("Yes")
    assert (found.kind, found.yes) == (QUESTION, True)


@pytest.mark.parametrize(("body", "language"), [("HELP", "en"), ("info", "en"), ("Ayuda", "es")])
def test_help_and_info_ask_for_help(body, language):
    assert (classify(body).kind, classify(body).language) == (HELP, language)


def test_help_with_more_words_may_be_distress_and_goes_to_staff():
    assert classify("help me").kind == QUESTION


@pytest.mark.parametrize(
    "body",
    ["Stop please", "STOP NOW", "stop it thanks", "alto por favor", "STOP STOP STOP"],
)
def test_a_stop_keyword_with_only_polite_words_is_an_opt_out(body):
    assert classify(body).kind == STOP


@pytest.mark.parametrize(
    "body",
    [
        "stop texting me",
        "Please stop sending",
        "please stop sending me these messages",
        "No more messages",
        "no more texts please",
        "unsubscribe me",
        "How do I unsubscribe?",
        "opt me out",
        "I want to opt-out",
        "don't text me anymore",
        "I don't want these texts",
        "remove me from your list",
        "Wrong number",
        "Stop the reminders",
    ],
)
def test_english_free_text_that_revokes_consent_is_an_opt_out(body):
    found = classify(body)
    assert (found.kind, found.keyword) == (STOP, False)


@pytest.mark.parametrize(
    "body",
    [
        "no me manden más mensajes",
        "No me manden mas mensajes por favor",
        "dejen de enviarme mensajes",
        "Por favor dejen de escribirme",
        "ya no quiero mensajes",
        "No quiero recibir más textos",
        "basta de mensajes",
        "no más mensajes",
        "quiero darme de baja",
        "número equivocado",
    ],
)
def test_spanish_free_text_that_revokes_consent_is_an_opt_out(body):
    found = classify(body)
    assert (found.kind, found.language) == (STOP, "es")


@pytest.mark.parametrize(
    "body",
    [
        "the pain won't stop",
        "When can I stop the ice?",
        "can I stop taking the pain pills?",
        "when will the texts stop?",
        "Please don't stop texting me, they help",
        "I can't stop shaking",
        "no more pain!",
        "El dolor no para",
        "¿Cuándo puedo dejar de usar el hielo?",
        "no dejen de enviarme mensajes",
        "My number is the same",
    ],
)
def test_replies_that_only_look_like_an_opt_out_stay_questions(body):
    assert classify(body).kind == QUESTION


@pytest.mark.parametrize(
    ("body", "score"),
    [("7", 7), ("0", 0), ("10", 10), ("7/10", 7), ("7 / 10", 7), ("7 out of 10", 7),
     ("pain 7", 7), ("Pain: 4", 4), ("my pain is 3", 3), ("pain level of 10", 10), ("3.", 3),
     ("dolor 8", 8), ("8 de 10", 8), ("mi dolor es 2", 2), ("seven", 7), ("siete", 7)],
)  # fmt: skip
def test_a_number_from_0_to_10_is_a_pain_score(body, score):
    found = classify(body)
    assert (found.kind, found.pain_score) == (PAIN, score)


@pytest.mark.parametrize(
    "body", ["11", "7.5", "5-6", "I took 2 pills", "call me at 5", "911", "day 3"]
)
def test_other_numbers_are_not_pain_scores(body):
    found = classify(body)
    assert found.kind != PAIN and found.pain_score is None


def test_pain_is_urgent_at_seven_or_a_rise_of_three():
    assert pain_urgency(6, None) is None
    assert pain_urgency(7, None) == "pain 7/10"
    assert pain_urgency(5, 2) == "pain up from 2 to 5"
    assert pain_urgency(4, 2) is None
    assert pain_urgency(9, 3) == "pain 9/10, up from 3"
    assert pain_urgency(2, 9) is None  # falling is good news


@pytest.mark.parametrize(
    ("body", "sign"),
    [
        ("I have a fever of 101", "fever"),
        ("feeling feverish", "fever"),
        ("The bandage is bleeding through", "bleeding"),
        ("my left leg is numb", "numbness"),
        ("tingling in my feet", "tingling"),
        ("I feel weak", "weakness"),
        ("my back pain is worse today", "worsening back pain"),
        ("new pain in my lower back", "worsening back pain"),
        ("the site is red and warm", "redness at the site"),
        ("swelling where the needle went in", "swelling"),
        ("there is pus", "drainage or pus"),
        ("it's draining", "drainage or pus"),
        ("I can't walk", "cannot move or walk"),
        ("can't move my legs", "cannot move or walk"),
        ("I lost control of my bladder", "loss of bladder or bowel control"),
        ("it won't stop bleeding", "bleeding"),
    ],
)
def test_english_warning_signs_make_a_reply_urgent(body, sign):
    found = classify(body)
    assert (found.kind, found.urgent_reason) == (QUESTION, sign)


@pytest.mark.parametrize(
    ("body", "sign"),
    [
        ("tengo fiebre", "fever"),
        ("me sangra la herida", "bleeding"),
        ("hay sangrado", "bleeding"),
        ("siento entumecimiento en la pierna", "numbness"),
        ("adormecimiento en los pies", "numbness"),
        ("hormigueo en las piernas", "tingling"),
        ("mucha debilidad", "weakness"),
        ("tengo más dolor", "worsening back pain"),
        ("el dolor está peor", "worsening back pain"),
        ("el dolor empeora", "worsening back pain"),
        ("enrojecimiento donde entró la aguja", "redness at the site"),
        ("hinchazón en la espalda", "swelling"),
        ("la herida supura", "drainage or pus"),
        ("sale pus", "drainage or pus"),
        ("no puedo mover las piernas", "cannot move or walk"),
    ],
)
def test_spanish_warning_signs_make_a_reply_urgent(body, sign):
    found = classify(body)
    assert (found.urgent_reason, found.language) == (sign, "es")


@pytest.mark.parametrize(
    "body",
    [
        "no fever",
        "No fever or bleeding, just sore",
        "I haven't had any fever",
        "the pain is not worse",
        "no numbness or tingling",
        "no tengo fiebre",
        "sin fiebre ni sangrado",
        "ya no sangra",
        "Can I take anti-inflammatories?",
        "What is my number?",
        "not an emergency, can I drive?",
    ],
)
def test_a_negated_or_look_alike_sign_is_not_urgent(body):
    assert classify(body).urgent_reason is None


@pytest.mark.parametrize(
    ("body", "sign"),
    [
        ("No fever, but the site is red", "redness at the site"),
        ("no fever and bleeding a little", "bleeding"),
        ("no tengo fiebre pero me sangra", "bleeding"),
        ("Not sure if I have a fever", "fever"),
    ],
)
def test_negation_reaches_only_its_own_clause(body, sign):
    assert classify(body).urgent_reason == sign


def test_a_revocation_that_names_a_warning_sign_is_both():
    found = classify("stop texting me, I have a fever")
    assert (found.kind, found.urgent_reason) == (STOP, "fever")


@pytest.mark.parametrize(
    "body",
    ["'; DROP TABLE reply; --", "<script>alert(1)</script>", "", "   ", "🙂", "a" * 1600],
)
def test_anything_else_is_a_question(body):
    found = classify(body)
    assert (found.kind, found.urgent_reason) == (QUESTION, None)


@pytest.mark.parametrize(
    ("body", "language"),
    [
        ("Can I take a shower today?", "en"),
        ("¿Puedo ducharme hoy?", "es"),
        ("Tengo una pregunta sobre el vendaje", "es"),
        ("7", None),
    ],
)
def test_the_language_is_guessed_from_common_words(body, language):
    assert classify(body).language == language
