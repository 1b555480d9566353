"""Customer records, seeded deterministically from the email address so every run shows the same data."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

CURRENCY = "CAD"
# Ontario HST, since every seeded customer lives in CA/ON.
TAX_RATE = Decimal("0.13")
FREE_SHIPPING_OVER = Decimal("100")
SHIPPING = Decimal("9.99")

# (title, variant title, sku, price)
CATALOGUE: tuple[tuple[str, str | None, str, str], ...] = (
    ("Ceramic Mug", "Sand / 350 ml", "MUG-350-SND", "24.95"),
    ("Merino Beanie", "Charcoal", "BEANIE-CHR", "39.00"),
    ("Canvas Tote", None, "TOTE-NAT", "18.50"),
    ("Pour-Over Kettle", "Matte Black", "KETTLE-BLK", "89.00"),
    ("Single Origin Coffee", "Whole bean / 340 g", "COF-340-WB", "21.75"),
    ("Linen Apron", "Olive", "APRON-OLV", "45.00"),
)


# Customers whose email is at one of these domains buy for that company too (B2B), at one location.
COMPANIES: dict[str, str] = {"acme.example": "Acme Wholesale"}


def money(value: Decimal) -> str:
    """A Decimal as Shopify serialises it: at least one decimal place, e.g. "49.9", "50.0", "24.95"."""
    text = f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}"
    return text[:-1] if text.endswith("0") else text


@dataclass
class Address:
    id: str
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    zone_code: str | None = None
    territory_code: str | None = None
    zip: str | None = None
    phone_number: str | None = None


@dataclass
class LineItem:
    id: str
    title: str
    variant_title: str | None
    sku: str
    quantity: int
    price: Decimal


@dataclass
class Fulfillment:
    id: str
    status: str
    company: str
    number: str
    url: str


@dataclass
class Order:
    id: str
    number: int
    confirmation_number: str
    processed_at: datetime
    financial_status: str
    fulfillment_status: str
    line_items: list[LineItem]
    fulfillments: list[Fulfillment]
    shipping_address: Address
    status_page_url: str

    @property
    def subtotal(self) -> Decimal:
        return sum((item.price * item.quantity for item in self.line_items), Decimal(0))

    @property
    def total_shipping(self) -> Decimal:
        return Decimal(0) if self.subtotal >= FREE_SHIPPING_OVER else SHIPPING

    @property
    def total_tax(self) -> Decimal:
        return (self.subtotal * TAX_RATE).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

    @property
    def total_price(self) -> Decimal:
        return self.subtotal + self.total_tax + self.total_shipping


@dataclass
class CompanyLocation:
    """A location of a B2B company that a customer may buy for (Storefront `companyLocationId`)."""

    id: str
    name: str
    company_id: str
    company_name: str


def company_location(email: str) -> CompanyLocation | None:
    """The company location a customer belongs to, from their email's domain; None for most customers."""
    domain = email.lower().rpartition("@")[2]
    if domain not in COMPANIES:
        return None
    number = 8_000_000_000 + int.from_bytes(hashlib.sha256(f"company:{domain}".encode()).digest()[:4])
    return CompanyLocation(
        id=f"gid://shopify/CompanyLocation/{number}",
        name="Head office",
        company_id=f"gid://shopify/Company/{number // 10}",
        company_name=COMPANIES[domain],
    )


@dataclass
class Customer:
    id: str
    email: str
    first_name: str | None
    last_name: str | None
    created_at: datetime
    addresses: list[Address]
    default_address_id: str | None
    orders: list[Order]
    tags: list[str] = field(default_factory=list)
    next_address_number: int = 1
    company_locations: list[CompanyLocation] = field(default_factory=list)

    @property
    def numeric_id(self) -> int:
        return int(self.id.rsplit("/", 1)[1])

    def new_address_id(self) -> str:
        """A fresh CustomerAddress GID, never reused even after deletes."""
        number = self.numeric_id * 100 + self.next_address_number
        self.next_address_number += 1
        return f"gid://shopify/CustomerAddress/{number}"


def customer_number(email: str) -> int:
    """A stable 13-digit customer number for an email, also the ID token's `sub` suffix."""
    digest = hashlib.sha256(email.lower().encode()).digest()
    return 7_000_000_000_000 + int.from_bytes(digest[:8]) % 1_000_000_000_000


def _names(email: str) -> tuple[str | None, str | None]:
    parts = [p for p in re.split(r"[._+\-]+", email.split("@", 1)[0]) if p.isalpha()]
    if not parts:
        return None, None
    first = parts[0].capitalize()
    last = " ".join(p.capitalize() for p in parts[1:]) or None
    return first, last


def seed_customer(email: str, *, base_url: str) -> Customer:
    """Build the customer for `email`: one default address in CA/ON and two or three orders."""
    email = email.lower()
    number = customer_number(email)
    rand = hashlib.sha256(f"seed:{email}".encode()).digest()
    first, last = _names(email)
    created = datetime(2025, 1, 1, 9, 30, tzinfo=UTC) + timedelta(days=rand[0], minutes=rand[1])
    customer = Customer(
        id=f"gid://shopify/Customer/{number}",
        email=email,
        first_name=first,
        last_name=last,
        created_at=created,
        addresses=[],
        default_address_id=None,
        orders=[],
    )
    home = Address(
        id=customer.new_address_id(),
        first_name=first,
        last_name=last,
        address1=f"{10 + rand[2]} Queen St W",
        city="Toronto",
        zone_code="ON",
        territory_code="CA",
        zip="M5H 2N2",
    )
    customer.addresses.append(home)
    customer.default_address_id = home.id
    if (location := company_location(email)) is not None:
        customer.company_locations.append(location)
    order_count = 2 + rand[3] % 2
    for index in range(order_count):
        order_id = number * 10 + index
        processed = created + timedelta(days=30 * (index + 1), hours=rand[4 + index] % 12)
        items: list[LineItem] = []
        for n in range(1 + index % 2 + (index == 2)):
            title, variant, sku, price = CATALOGUE[(rand[8 + index] + n) % len(CATALOGUE)]
            items.append(
                LineItem(
                    id=f"gid://shopify/LineItem/{order_id * 10 + n}",
                    title=title,
                    variant_title=variant,
                    sku=sku,
                    quantity=1 + rand[12 + n] % 3,
                    price=Decimal(price),
                )
            )
        # The newest order is still open; older ones have shipped.
        shipped = index < order_count - 1
        tracking = f"1Z{number % 10**8:08d}{index:02d}"
        order = Order(
            id=f"gid://shopify/Order/{order_id}",
            number=1001 + (number % 8000) + index,
            confirmation_number=hashlib.sha256(f"conf:{order_id}".encode()).hexdigest()[:9].upper(),
            processed_at=processed,
            financial_status="PAID",
            fulfillment_status="FULFILLED" if shipped else "UNFULFILLED",
            line_items=items,
            fulfillments=[
                Fulfillment(
                    id=f"gid://shopify/Fulfillment/{order_id}",
                    status="SUCCESS",
                    company="UPS",
                    number=tracking,
                    url=f"https://www.ups.com/track?tracknum={tracking}",
                )
            ]
            if shipped
            else [],
            shipping_address=Address(**{**vars(home), "id": f"gid://shopify/CustomerAddress/{order_id}"}),
            status_page_url=f"{base_url}/account/orders/{order_id}",
        )
        customer.orders.append(order)
    return customer
