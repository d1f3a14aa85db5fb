"""What editors and the newsroom use: the offer chooser, catalogue reads, the purchase log, the funnel,
reports, paywall-view counts and reconciliation."""
