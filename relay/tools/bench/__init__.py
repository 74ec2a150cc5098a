"""Benchmarks behind `relay bench`: they print figures; the tests never assert on timing."""
