"""inerf.train"""
