"""Keyword retrieval: stemming, scoring, ties and thresholds."""

from __future__ import annotations

import pytest

from doubleedge.retrieval import Article, best_article, content_words, relevance

SHIPPING = Article("Shipping times", "Standard shipping takes 3 to 5 business days.")
BATTERY = Article("Battery care", "Store the battery at room temperature.")
WARRANTY = Article("Warranty", "Motors and batteries are covered for 2 years.")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("batteries", {"battery"}),
        ("battery", {"battery"}),
        ("shipping", {"ship"}),
        ("shipped", {"ship"}),
        ("ships", {"ship"}),
        ("boxes", {"box"}),
        ("charged", {"charg"}),
        ("yes", {"yes"}),  # too short to strip
        ("bus", {"bus"}),
    ],
)
def test_stemming(text, expected):
    assert content_words(text) == expected


def test_stemming_matches_plural_with_singular():
    assert content_words("How are batteries shipped?") == content_words("battery ship")


@pytest.mark.parametrize("text", ["", "What is it?", "Can you do that for me, please?", "?!"])
def test_stopwords_and_punctuation_are_not_content_words(text):
    assert content_words(text) == set()


def test_content_words_are_lower_case():
    assert content_words("WARRANTY Warranty warranty") == {"warranty"}


@pytest.mark.parametrize(
    ("article", "question", "score"),
    [
        (SHIPPING, "shipping", 3),  # body once + title twice
        (SHIPPING, "business days", 2),  # body only
        (SHIPPING, "times", 2),  # title only
        (SHIPPING, "battery", 0),
    ],
)
def test_relevance_counts_title_words_three_times(article, question, score):
    assert relevance(article, content_words(question)) == score


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How long does shipping take?", SHIPPING),
        ("How do I store my batteries?", BATTERY),
        ("Is my motor covered?", WARRANTY),
    ],
)
def test_best_article(question, expected):
    assert best_article([SHIPPING, BATTERY, WARRANTY], question) == expected


def test_best_article_ties_go_to_the_first():
    first, second = Article("Alpha", "shipping info"), Article("Beta", "shipping info")
    assert best_article([first, second], "shipping") is first
    assert best_article([second, first], "shipping") is second


def test_best_article_prefers_a_title_match():
    in_body = Article("Alpha", "warranty terms")
    in_title = Article("Warranty", "terms")
    assert best_article([in_body, in_title], "warranty") is in_title


def test_best_article_below_the_minimum_is_none():
    assert best_article([SHIPPING], "business", minimum=2) is None


def test_best_article_at_the_minimum_is_returned():
    assert best_article([SHIPPING], "business days", minimum=2) is SHIPPING


def test_best_article_with_no_shared_words_is_none():
    assert best_article([SHIPPING, BATTERY], "zebra crossing") is None


def test_best_article_without_content_words_is_none():
    assert best_article([SHIPPING, BATTERY], "what is the") is None


def test_best_article_of_no_articles_is_none():
    assert best_article([], "shipping") is None
