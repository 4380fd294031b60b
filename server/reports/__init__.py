"""The consultation's signed report (issue 20, O3): content, signature, PDF and FHIR."""
