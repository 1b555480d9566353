"""The Storefront API schema: the subset a headless cart needs (products, cart, buyer identity, shop domain)."""

from graphql import GraphQLSchema, build_schema

# ISO 3166-1 alpha-2, plus the codes Shopify's CountryCode adds: AC, TA, XK and ZZ ("unknown region").
COUNTRY_CODES = (
    "AC AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV "
    "BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET "
    "FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM "
    "IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD "
    "ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE "
    "PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST "
    "SV SX SY SZ TA TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF "
    "WS XK YE YT ZA ZM ZW ZZ"
)

# Only what the stand-in resolves is declared, so an unknown field fails validation as it would on Shopify.
SDL = f"""
scalar DateTime
scalar Decimal
scalar URL

enum CurrencyCode {{ CAD USD EUR GBP }}
enum CountryCode {{ {COUNTRY_CODES} }}
enum CartErrorCode {{
  BUYER_CANNOT_PURCHASE_FOR_COMPANY_LOCATION CART_TOO_LARGE INVALID INVALID_COMPANY_LOCATION
  INVALID_MERCHANDISE_LINE LESS_THAN MAXIMUM_EXCEEDED
}}
enum CartWarningCode {{ MERCHANDISE_NOT_ENOUGH_STOCK MERCHANDISE_OUT_OF_STOCK PAYMENTS_GIFT_CARDS_UNAVAILABLE }}

interface Node {{ id: ID! }}

type PageInfo {{ hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String }}
type MoneyV2 {{ amount: Decimal! currencyCode: CurrencyCode! }}

type ProductVariant implements Node {{
  id: ID!
  title: String!
  sku: String
  availableForSale: Boolean!
  price: MoneyV2!
  product: Product!
}}
type ProductVariantConnection {{ nodes: [ProductVariant!]! pageInfo: PageInfo! }}
type ProductPriceRange {{ minVariantPrice: MoneyV2! maxVariantPrice: MoneyV2! }}
type Product implements Node {{
  id: ID!
  handle: String!
  title: String!
  description: String!
  availableForSale: Boolean!
  priceRange: ProductPriceRange!
  variants(first: Int, after: String, last: Int, before: String): ProductVariantConnection!
}}
type ProductConnection {{ nodes: [Product!]! pageInfo: PageInfo! }}

union Merchandise = ProductVariant
type CartLineCost {{ amountPerQuantity: MoneyV2! totalAmount: MoneyV2! }}
interface BaseCartLine {{ id: ID! quantity: Int! merchandise: Merchandise! cost: CartLineCost! }}
type CartLine implements BaseCartLine & Node {{ id: ID! quantity: Int! merchandise: Merchandise! cost: CartLineCost! }}
type BaseCartLineConnection {{ nodes: [BaseCartLine!]! pageInfo: PageInfo! }}
type CartCost {{ subtotalAmount: MoneyV2! totalAmount: MoneyV2! }}

type Customer {{ id: ID! email: String displayName: String! firstName: String lastName: String }}
type Company {{ id: ID! name: String! }}
type CompanyLocation {{ id: ID! name: String! }}
type PurchasingCompany {{ company: Company! location: CompanyLocation! }}
type CartBuyerIdentity {{
  email: String
  phone: String
  countryCode: CountryCode
  customer: Customer
  purchasingCompany: PurchasingCompany
}}

type Cart implements Node {{
  id: ID!
  checkoutUrl: URL!
  createdAt: DateTime!
  updatedAt: DateTime!
  note: String
  totalQuantity: Int!
  lines(first: Int, after: String, last: Int, before: String): BaseCartLineConnection!
  cost: CartCost!
  buyerIdentity: CartBuyerIdentity!
}}

type CartUserError {{ code: CartErrorCode field: [String!] message: String! }}
type CartWarning {{ code: CartWarningCode! message: String! target: ID! }}
type CartCreatePayload {{ cart: Cart userErrors: [CartUserError!]! warnings: [CartWarning!]! }}
type CartLinesAddPayload {{ cart: Cart userErrors: [CartUserError!]! warnings: [CartWarning!]! }}
type CartBuyerIdentityUpdatePayload {{ cart: Cart userErrors: [CartUserError!]! warnings: [CartWarning!]! }}

type Domain {{ host: String! sslEnabled: Boolean! url: URL! }}
type Shop {{ id: ID! name: String! primaryDomain: Domain! }}

input CartLineInput {{ merchandiseId: ID! quantity: Int = 1 }}
input CartBuyerIdentityInput {{
  email: String
  phone: String
  countryCode: CountryCode
  customerAccessToken: String
  companyLocationId: ID
}}
input CartInput {{ lines: [CartLineInput!] buyerIdentity: CartBuyerIdentityInput note: String }}

type QueryRoot {{
  products(first: Int, after: String, last: Int, before: String): ProductConnection!
  product(id: ID, handle: String): Product
  cart(id: ID!): Cart
  shop: Shop!
}}

type Mutation {{
  cartCreate(input: CartInput = {{}}): CartCreatePayload
  cartLinesAdd(cartId: ID!, lines: [CartLineInput!]!): CartLinesAddPayload
  cartBuyerIdentityUpdate(cartId: ID!, buyerIdentity: CartBuyerIdentityInput!): CartBuyerIdentityUpdatePayload
}}

schema {{ query: QueryRoot mutation: Mutation }}
"""


def build() -> GraphQLSchema:
    """A fresh schema object; resolvers are attached by storefront_api."""
    return build_schema(SDL)
