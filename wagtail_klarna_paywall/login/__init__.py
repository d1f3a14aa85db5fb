"""Reader login: Payway's SSO2 and the identity provider that hands the plugin a reader's Payway token."""
