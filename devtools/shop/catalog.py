"""Static vocabulary of the synthetic shop: categories, brands, devices, traffic sources."""

from __future__ import annotations

# category -> (share of catalog, median price, price spread (lognormal sigma), brands, nouns)
CATEGORIES: dict[str, tuple[float, float, float, tuple[str, ...], tuple[str, ...]]] = {
    "Electronics": (
        0.16,
        120.0,
        0.9,
        ("Voltix", "Nordwave", "Pixelon", "Auralis"),
        ("Headphones", "Speaker", "Charger", "Smartwatch", "Keyboard", "Monitor"),
    ),
    "Home & Kitchen": (
        0.18,
        35.0,
        0.7,
        ("Casa Verde", "Hearthly", "Potluck"),
        ("Pan", "Knife Set", "Blender", "Mug", "Lamp", "Cushion"),
    ),
    "Fashion": (
        0.2,
        45.0,
        0.6,
        ("Linea", "Urban Fold", "Marlow"),
        ("T-Shirt", "Jeans", "Sneakers", "Jacket", "Scarf", "Dress"),
    ),
    "Beauty": (
        0.1,
        22.0,
        0.5,
        ("Glowette", "Purebloom"),
        ("Serum", "Lipstick", "Shampoo", "Face Cream", "Perfume"),
    ),
    "Sports": (
        0.12,
        55.0,
        0.8,
        ("Peakform", "Stridex"),
        ("Yoga Mat", "Dumbbells", "Running Shoes", "Water Bottle", "Backpack"),
    ),
    "Books": (
        0.1,
        16.0,
        0.35,
        ("Inkwell Press", "Lanterna"),
        ("Novel", "Cookbook", "Biography", "Travel Guide", "Comic"),
    ),
    "Toys": (
        0.08,
        28.0,
        0.6,
        ("Playnest", "Tinkertown"),
        ("Puzzle", "Building Set", "Plush Bear", "Board Game"),
    ),
    "Grocery": (
        0.06,
        9.0,
        0.4,
        ("Fieldhouse", "Good Grain"),
        ("Coffee Beans", "Olive Oil", "Granola", "Tea Sampler"),
    ),
}
ADJECTIVES = ("Classic", "Pro", "Eco", "Compact", "Deluxe", "Everyday", "Ultra", "Vintage", "Smart")

# platform -> (share of sessions, write-key source, device type)
PLATFORMS: dict[str, tuple[float, str, str]] = {
    "web_desktop": (0.45, "web", "desktop"),
    "web_mobile": (0.25, "web", "mobile"),
    "ios": (0.18, "ios", "mobile"),
    "android": (0.12, "android", "mobile"),
}
USER_AGENTS: dict[str, tuple[str, ...]] = {
    "web_desktop": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    ),
    "web_mobile": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    ),
}
APP_DEVICES = {
    "ios": (("Apple", "iPhone15,2"), ("Apple", "iPhone16,1"), ("Apple", "iPad13,4")),
    "android": (("Google", "Pixel 8"), ("samsung", "SM-S918B"), ("OnePlus", "CPH2581")),
}
LIBRARIES = {
    "web": ("analytics.js", "next-1.75.0"),
    "ios": ("analytics-ios", "4.1.8"),
    "android": ("analytics-android", "4.11.3"),
    "server": ("analytics-python", "2.3.3"),
}

# traffic source -> (share for new visitors, share for returning users, referrer, utm medium)
TRAFFIC_SOURCES: dict[str, tuple[float, float, str | None, str | None]] = {
    "google": (0.34, 0.2, "https://www.google.com/", None),
    "direct": (0.2, 0.35, None, None),
    "facebook": (0.1, 0.05, None, "paid_social"),
    "instagram": (0.08, 0.05, None, "paid_social"),
    "email": (0.03, 0.22, None, "email"),
    "tiktok": (0.06, 0.02, None, "paid_social"),
    "bing": (0.04, 0.03, "https://www.bing.com/", None),
    "affiliate": (0.15, 0.08, None, "affiliate"),
}

COUNTRIES = (("US", 0.45), ("GB", 0.15), ("DE", 0.12), ("FR", 0.1), ("CA", 0.08), ("NL", 0.1))
FIRST_NAMES = (
    "Ava",
    "Liam",
    "Mia",
    "Noah",
    "Emma",
    "Lucas",
    "Sofia",
    "Leo",
    "Ines",
    "Omar",
    "Yuki",
    "Priya",
    "Jonas",
    "Chloe",
    "Mateo",
    "Zara",
    "Ethan",
    "Lena",
    "Amir",
    "Nora",
)
LAST_NAMES = (
    "Smith",
    "Garcia",
    "Muller",
    "Rossi",
    "Dubois",
    "Kim",
    "Patel",
    "Jansen",
    "Novak",
    "Silva",
    "Brown",
    "Okafor",
    "Tanaka",
    "Larsen",
    "Cohen",
    "Moreau",
)

# share of the day's sessions by hour (UTC), two peaks: lunch and evening
HOURLY_WEIGHTS = (
    1.0,
    0.6,
    0.4,
    0.3,
    0.3,
    0.5,
    1.0,
    2.0,
    3.0,
    3.5,
    3.8,
    4.2,
    5.0,
    4.8,
    4.0,
    3.8,
    4.0,
    4.5,
    5.2,
    6.0,
    6.5,
    5.8,
    4.0,
    2.2,
)
# Monday .. Sunday
WEEKDAY_FACTORS = (0.92, 0.94, 0.97, 1.0, 1.06, 1.22, 1.16)
