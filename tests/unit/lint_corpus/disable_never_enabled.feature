Feature: disabled for good
  Scenario: disable and restart
    Given the load balancer is lb1
    And I want to update hosts with class roles::web
    And I expect to update 9 hosts
    When I disable the hosts in the load balancer backend app
    Then the hosts should be disabled in the load balancer backend app
    When I restart the service nginx
    Then the service nginx should be running
