"""Who may do what: operators, roles and their named permissions, API tokens, login."""
