"""inerf.synth"""
