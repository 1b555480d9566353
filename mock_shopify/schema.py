"""The GraphQL schema: a realistic subset of the Customer Account API 2026-10.

Read from the 2026-04 introspection; 2026-10 removed only `Customer.lastIncompleteCheckout`, not in this subset.
"""

from graphql import GraphQLSchema, build_schema

# Only what the stand-in resolves is declared, so an unknown field fails validation as it would on Shopify.
SDL = """

scalar DateTime
scalar Decimal
scalar URL

enum CurrencyCode { CAD USD EUR GBP }
enum CountryCode { US CA GB DE FR AU JP NL IT ES MX IE NZ SE CH }
enum EmailMarketingState { INVALID NOT_SUBSCRIBED PENDING REDACTED SUBSCRIBED UNSUBSCRIBED }
enum SmsMarketingState { NOT_SUBSCRIBED PENDING REDACTED SUBSCRIBED UNSUBSCRIBED }
enum OrderSortKeys { CREATED_AT ID ORDER_NUMBER PROCESSED_AT TOTAL_PRICE UPDATED_AT }
enum OrderFinancialStatus {
  AUTHORIZED EXPIRED PAID PARTIALLY_PAID PARTIALLY_REFUNDED PENDING REFUNDED VOIDED
}
enum OrderFulfillmentStatus {
  FULFILLED IN_PROGRESS ON_HOLD OPEN PARTIALLY_FULFILLED PENDING_FULFILLMENT READY_FOR_DELIVERY
  READY_FOR_PICKUP RESTOCKED SCHEDULED UNFULFILLED
}
enum FulfillmentStatus { CANCELLED ERROR FAILURE OPEN PENDING SUCCESS }
enum UserErrorsCustomerUserErrorsCode {
  CONTAINS_HTML_TAGS CONTAINS_URL CUSTOMER_DOES_NOT_EXIST CUSTOMER_INPUT_ARGUMENT_EMPTY INVALID TOO_LONG
}
enum UserErrorsCustomerAddressUserErrorsCode {
  ADDRESS1_MISSING ADDRESS_ARGUMENT_EMPTY ADDRESS_ID_DOES_NOT_EXIST CONTAINS_HTML_TAGS COUNTRY_NOT_EXIST
  CUSTOMER_ADDRESS_ALREADY_EXISTS DELETING_CUSTOMER_DEFAULT_ADDRESS_NOT_ALLOWED
  DEMOTING_CUSTOMER_DEFAULT_ADDRESS_NOT_ALLOWED INVALID INVALID_FOR_COUNTRY INVALID_FOR_COUNTRY_AND_PROVINCE
  INVALID_TERRITORY_CODE PHONE_NUMBER_NOT_VALID REQUIRED TERRITORY_CODE_MISSING TOO_LONG ZONE_CODE_MISSING
}

interface Node { id: ID! }
interface DisplayableError { field: [String!] message: String! }

type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String }
type MoneyV2 { amount: Decimal! currencyCode: CurrencyCode! }
type Image { url: URL! altText: String width: Int height: Int }

type Shop implements Node { id: ID! name: String! }

type CustomerEmailAddress { emailAddress: String marketingState: EmailMarketingState! }
type CustomerPhoneNumber { phoneNumber: String! marketingState: SmsMarketingState! }

type Customer implements Node {
  id: ID!
  firstName: String
  lastName: String
  displayName: String!
  imageUrl: URL!
  emailAddress: CustomerEmailAddress
  phoneNumber: CustomerPhoneNumber
  defaultAddress: CustomerAddress
  addresses(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
            skipDefault: Boolean = false): CustomerAddressConnection!
  orders(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
         sortKey: OrderSortKeys = ID, query: String): OrderConnection!
  createdAt: DateTime!
  creationDate: DateTime!
  tags: [String!]!
}

type CustomerAddress implements Node {
  id: ID!
  address1: String
  address2: String
  city: String
  company: String
  country: String
  firstName: String
  lastName: String
  name: String
  phoneNumber: String
  province: String
  territoryCode: CountryCode
  zoneCode: String
  zip: String
  formattedArea: String
  formatted(withName: Boolean = false, withCompany: Boolean = true): [String!]!
}
type CustomerAddressEdge { cursor: String! node: CustomerAddress! }
type CustomerAddressConnection {
  edges: [CustomerAddressEdge!]! nodes: [CustomerAddress!]! pageInfo: PageInfo!
}

type Order implements Node {
  id: ID!
  name: String!
  number: Int!
  confirmationNumber: String
  processedAt: DateTime!
  createdAt: DateTime!
  updatedAt: DateTime!
  financialStatus: OrderFinancialStatus
  fulfillmentStatus: OrderFulfillmentStatus!
  totalPrice: MoneyV2!
  subtotal: MoneyV2
  totalTax: MoneyV2
  totalShipping: MoneyV2!
  currencyCode: CurrencyCode!
  email: String
  requiresShipping: Boolean!
  lineItems(first: Int, after: String, last: Int, before: String): LineItemConnection!
  fulfillments(first: Int, after: String, last: Int, before: String, reverse: Boolean = false):
    FulfillmentConnection!
  shippingAddress: CustomerAddress
  statusPageUrl: URL!
}
type OrderEdge { cursor: String! node: Order! }
type OrderConnection { edges: [OrderEdge!]! nodes: [Order!]! pageInfo: PageInfo! }

type LineItem implements Node {
  id: ID!
  title: String!
  name: String!
  quantity: Int!
  variantTitle: String
  sku: String
  image: Image
  price: MoneyV2
  totalPrice: MoneyV2
}
type LineItemEdge { cursor: String! node: LineItem! }
type LineItemConnection { edges: [LineItemEdge!]! nodes: [LineItem!]! pageInfo: PageInfo! }

type TrackingInformation { company: String number: String url: URL }
type Fulfillment implements Node {
  id: ID!
  status: FulfillmentStatus
  trackingInformation: [TrackingInformation!]!
}
type FulfillmentEdge { cursor: String! node: Fulfillment! }
type FulfillmentConnection { edges: [FulfillmentEdge!]! nodes: [Fulfillment!]! pageInfo: PageInfo! }

type QueryRoot {
  customer: Customer!
  order(id: ID!): Order
  shop: Shop!
}

input CustomerUpdateInput { firstName: String lastName: String }
input CustomerAddressInput {
  address1: String address2: String city: String company: String firstName: String lastName: String
  phoneNumber: String territoryCode: String zoneCode: String zip: String
}

type UserErrorsCustomerUserErrors implements DisplayableError {
  code: UserErrorsCustomerUserErrorsCode field: [String!] message: String!
}
type UserErrorsCustomerAddressUserErrors implements DisplayableError {
  code: UserErrorsCustomerAddressUserErrorsCode field: [String!] message: String!
}
type CustomerUpdatePayload { customer: Customer userErrors: [UserErrorsCustomerUserErrors!]! }
type CustomerAddressCreatePayload {
  customerAddress: CustomerAddress userErrors: [UserErrorsCustomerAddressUserErrors!]!
}
type CustomerAddressUpdatePayload {
  customerAddress: CustomerAddress userErrors: [UserErrorsCustomerAddressUserErrors!]!
}
type CustomerAddressDeletePayload { deletedAddressId: ID userErrors: [UserErrorsCustomerAddressUserErrors!]! }

type Mutation {
  customerUpdate(input: CustomerUpdateInput!): CustomerUpdatePayload
  customerAddressCreate(address: CustomerAddressInput!, defaultAddress: Boolean = false):
    CustomerAddressCreatePayload
  customerAddressUpdate(addressId: ID!, address: CustomerAddressInput, defaultAddress: Boolean = null):
    CustomerAddressUpdatePayload
  customerAddressDelete(addressId: ID!): CustomerAddressDeletePayload
}

schema { query: QueryRoot mutation: Mutation }
"""


def build() -> GraphQLSchema:
    """A fresh schema object; resolvers are attached by graphql_api."""
    return build_schema(SDL)
