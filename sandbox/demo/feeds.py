"""RSS feed of the latest articles: titles, intros and the free text only, never the paywalled part."""

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.utils.translation import gettext_lazy as _

from wagtail_klarna_paywall.reading.gating import feed_description

from .models import ArticlePage


class ArticleFeed(Feed):
    title = settings.WAGTAIL_SITE_NAME
    link = "/"
    description = _("The latest news")

    def items(self):
        return ArticlePage.objects.live().public().order_by("-date", "-pk")[:20]

    def item_title(self, item):
        return item.title

    def item_description(self, item):
        # Feed readers carry no login: every item gets the free text only, whoever asks.
        return "\n\n".join(part for part in (item.intro, feed_description(item)) if part)

    def item_link(self, item):
        return item.get_url()

    def item_pubdate(self, item):
        return item.first_published_at
