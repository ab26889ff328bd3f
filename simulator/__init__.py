"""Simulated office complex served over Modbus."""
