"""Site search. The index holds only the free part of each article (see ``ArticlePage.search_fields``)."""

from django.core.paginator import Paginator
from django.template.response import TemplateResponse

from .models import ArticlePage


def search(request):
    query = request.GET.get("q", "").strip()[:200]
    results = ArticlePage.objects.none()
    if query:
        results = ArticlePage.objects.live().public().search(query)
    page = Paginator(results, 10).get_page(request.GET.get("page"))
    return TemplateResponse(request, "demo/search.html", {"query": query, "results": page})
