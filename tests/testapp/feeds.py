"""An RSS feed of articles, as a publisher's site would offer: free text and a link, never paywalled text."""

from django.contrib.syndication.views import Feed

from wagtail_klarna_paywall.reading.gating import feed_description

from .models import ArticlePage


class ArticleFeed(Feed):
    title = "Articles"
    link = "/"
    description = "Latest articles"

    def get_object(self, request, *args, **kwargs):
        # Kept for item_description: the feed is the same for every reader (feed readers carry no login).
        self.request = request
        return None

    def items(self):
        return ArticlePage.objects.live().order_by("-first_published_at")[:20]

    def item_title(self, item):
        return item.title

    def item_description(self, item):
        return feed_description(item, request=self.request)

    def item_link(self, item):
        return item.get_full_url(self.request)
