"""The management REST API's tenancy resources and the scoping base every resource shares."""
