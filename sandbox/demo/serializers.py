"""API serializer for article bodies, cut at the paywall for readers without access."""

from rest_framework.fields import Field


class PaywalledBodySerializer(Field):
    """Delegates to ``wagtail_klarna_paywall.gating.PaywalledStreamFieldSerializer``, imported on first use.

    Wagtail's API serializers cannot be imported while models load, and ``api_fields`` are declared then.
    """

    def __init__(self, **kwargs):
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value):
        from wagtail_klarna_paywall.gating import PaywalledStreamFieldSerializer

        serializer = PaywalledStreamFieldSerializer()
        serializer.bind(self.field_name, self.parent)
        return serializer.to_representation(value)
