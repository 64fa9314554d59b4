"""Reference data of the simulated retailer: stores, the product catalogue, names, referrers.

Output grain: one :class:`Store` per store, one :class:`Product` per product. The catalogue is
the same for every seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Store:
    store_id: str
    name: str
    region: str
    timezone: str
    phone_prefix: str
    mobile_lead: str


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    category: str
    price_cents: int


STORES = (
    Store("S01", "Milano Duomo", "Italy", "Europe/Rome", "+39", "3"),
    Store("S02", "Roma Termini", "Italy", "Europe/Rome", "+39", "3"),
    Store("S03", "Lisboa Chiado", "Portugal", "Europe/Lisbon", "+351", "9"),
    Store("S04", "Helsinki Kamppi", "Finland", "Europe/Helsinki", "+358", "4"),
)

PRODUCT_NAMES = {
    "shoes": (
        "Leather Sneaker",
        "Suede Loafer",
        "Chelsea Boot",
        "Running Shoe",
        "Canvas Slip-On",
        "Ankle Boot",
        "Ballet Flat",
        "Derby Shoe",
        "Hiking Boot",
        "Espadrille",
    ),
    "jackets": (
        "Denim Jacket",
        "Wool Coat",
        "Puffer Jacket",
        "Trench Coat",
        "Leather Biker",
        "Rain Shell",
        "Quilted Vest",
        "Bomber Jacket",
        "Linen Blazer",
        "Parka",
    ),
    "dresses": (
        "Wrap Dress",
        "Slip Dress",
        "Shirt Dress",
        "Maxi Dress",
        "Knit Dress",
        "Midi Dress",
        "Sundress",
        "Pleated Dress",
        "Tunic Dress",
        "Evening Dress",
    ),
    "jeans": (
        "Slim Jeans",
        "Straight Jeans",
        "Wide-Leg Jeans",
        "Bootcut Jeans",
        "Mom Jeans",
        "Skinny Jeans",
        "Relaxed Jeans",
        "Cropped Jeans",
        "Black Jeans",
        "Carpenter Jeans",
    ),
    "bags": (
        "Tote Bag",
        "Crossbody Bag",
        "Backpack",
        "Clutch",
        "Weekender",
        "Bucket Bag",
        "Belt Bag",
        "Shopper",
        "Messenger Bag",
        "Laptop Sleeve",
    ),
    "accessories": (
        "Wool Scarf",
        "Leather Belt",
        "Beanie",
        "Sunglasses",
        "Leather Gloves",
        "Silk Scarf",
        "Card Holder",
        "Baseball Cap",
        "Socks 3-Pack",
        "Keyring",
    ),
}
_PRICE_RANGES = {
    "shoes": (49, 179),
    "jackets": (79, 299),
    "dresses": (39, 159),
    "jeans": (39, 119),
    "bags": (29, 249),
    "accessories": (9, 59),
}
_CATALOGUE_SEED = 20260105  # the catalogue is the same for every sample seed

FIRST_NAMES = (
    "giulia", "marco", "sofia", "luca", "chiara", "matteo", "ana", "joao", "ines", "tiago",
    "mariana", "pedro", "aino", "mikko", "emilia", "juho", "laura", "ville", "elena", "paolo",
)  # fmt: skip
LAST_NAMES = (
    "rossi", "bianchi", "romano", "colombo", "ricci", "silva", "santos", "ferreira", "costa",
    "oliveira", "korhonen", "virtanen", "makinen", "nieminen", "laine", "greco", "bruno",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
CAMPAIGNS = ("winter-sale", "spring-new-in", "summer-sale", "loyalty-days")


# referral kind -> referrer URLs; hosts from docs/sample-format.md
REFERRERS: dict[str, tuple[str, ...]] = {
    "review_site": (
        "https://www.trustpilot.com/review/shop.example",
        "https://reviews.example.org/shops/shop-example",
    ),
    "forum": ("https://www.reddit.com/r/femalefashionadvice/", "https://forum.example.net/t/boots"),
    "marketplace": (
        "https://www.amazon.example/shop-example",
        "https://zalando.example/brand/shop",
    ),
    "social": ("https://www.instagram.com/", "https://l.facebook.com/", "https://www.tiktok.com/"),
}


def catalogue() -> tuple[Product, ...]:
    """The product catalogue: 10 products in each of 6 categories, fixed prices."""
    rng = random.Random(_CATALOGUE_SEED)
    products = []
    for category, names in PRODUCT_NAMES.items():
        low, high = _PRICE_RANGES[category]
        for name in names:
            euros = rng.randrange(low, high + 1, 10)
            products.append(Product("", name, category, euros * 100 - 10))
    return tuple(
        Product(f"P{number:03d}", p.name, p.category, p.price_cents)
        for number, p in enumerate(products, start=1)
    )
