"""Policy: Cedar rules, directives, approvals and time-boxed grants."""
