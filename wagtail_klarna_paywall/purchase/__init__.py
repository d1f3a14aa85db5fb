"""The purchase flow: from the buy click to the confirmation, its views, rate limits and response
hardening."""
