"""The HTTP views: each module parses requests for one domain, calls its service and
renders the answer. Only this package and :mod:`server.app` read the app state."""
