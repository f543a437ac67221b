"""MentalChat16K data layer: validated loading, the one formatting function, packing and the data module."""
